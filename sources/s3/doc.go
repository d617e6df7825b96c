// Package s3source is the "s3" source: Amazon S3 (and MinIO, or any
// S3-compatible store) event notifications become CloudEvents, one per
// record, following the CloudEvents AWS S3 adapter:
//
//	id              x-amz-request-id "." x-amz-id-2 (responseElements),
//	                else a hash of the record
//	source          eventSource "." awsRegion "." bucket (aws:s3.us-east-1.uploads);
//	                without a region: eventSource "." bucket (minio:s3.uploads)
//	type            "com.amazonaws.s3." + eventName without MinIO's "s3:" prefix
//	subject         the object key, URL-decoded ("incoming/file name.json")
//	time            eventTime
//	datacontenttype application/json
//	data            the record
//
// s3:TestEvent messages are acknowledged and dropped.
//
// The notifications arrive by one of three transports: an SQS queue that S3
// writes to (directly, or through SNS without raw message delivery), polled
// like the sqs source and deleted only after Ingest returned nil; an SNS
// HTTP(S) subscription, served on the HTTP ingress, which confirms
// subscriptions of allow-listed topics only and verifies SNS signatures;
// and MinIO's webhook target, served on the HTTP ingress with a shared
// token. HTTP requests are answered 202 only once their events are in the
// journal.
package s3source
