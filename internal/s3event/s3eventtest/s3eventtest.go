// Package s3eventtest holds S3 event notifications as the services write
// them, for tests of the packages that read them. Only tests import it.
package s3eventtest

import "encoding/json"

// Notifications as the services write them.
const (
	// AWSPut is an S3 notification as AWS writes it to SQS (one record).
	AWSPut = `{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-west-2",` +
		`"eventTime":"2024-05-01T12:34:56.789Z","eventName":"ObjectCreated:Put",` +
		`"userIdentity":{"principalId":"AWS:AIDAEXAMPLE"},"requestParameters":{"sourceIPAddress":"203.0.113.7"},` +
		`"responseElements":{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},` +
		`"s3":{"s3SchemaVersion":"1.0","configurationId":"uploads-created","bucket":{"name":"uploads","ownerIdentity":{"principalId":"A3NL1KOZZKEXAMPLE"},"arn":"arn:aws:s3:::uploads"},` +
		`"object":{"key":"incoming/file+name.json","size":1024,"eTag":"d41d8cd98f00b204e9800998ecf8427e","sequencer":"0055AED6DCD90281E5"}}}]}`

	// MinIOPut is the body of MinIO's notification targets (webhook, NATS,
	// AMQP ...): EventName and Key beside the record; the key is form
	// encoded, "/" included; no region.
	MinIOPut = `{"EventName":"s3:ObjectCreated:Put","Key":"uploads/incoming/file name.json","Records":[{"eventVersion":"2.0",` +
		`"eventSource":"minio:s3","awsRegion":"","eventTime":"2026-02-12T10:00:00.123Z","eventName":"s3:ObjectCreated:Put",` +
		`"userIdentity":{"principalId":"minioadmin"},"requestParameters":{"principalId":"minioadmin","region":"","sourceIPAddress":"127.0.0.1"},` +
		`"responseElements":{"x-amz-id-2":"dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8","x-amz-request-id":"1822F2B9B8C8D1A0",` +
		`"x-minio-deployment-id":"9f2a1c3e-0000-4000-8000-000000000000","x-minio-origin-endpoint":"http://127.0.0.1:9000"},` +
		`"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"uploads","ownerIdentity":{"principalId":"minioadmin"},"arn":"arn:aws:s3:::uploads"},` +
		`"object":{"key":"incoming%2Ffile+name.json","size":5,"eTag":"5d41402abc4b2a76b9719d911017c592","contentType":"application/json",` +
		`"userMetadata":{"content-type":"application/json"},"sequencer":"1822F2B9B8F6C1E2"}},` +
		`"source":{"host":"127.0.0.1","port":"","userAgent":"aws-sdk-go-v2"}}]}`

	// AWSTest is the message S3 sends when a notification configuration
	// is saved.
	AWSTest = `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2024-05-01T12:00:00.000Z","Bucket":"uploads",` +
		`"RequestId":"5582815E1AEA5ADF","HostId":"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE"}`
)

// Attributes of the events of AWSPut and MinIOPut: their ids and sources,
// and the type and subject (the decoded key) of both.
const (
	AWSPutID       = "C3D13FE58DE4C810.FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD.0a65d5da"
	AWSPutSource   = "aws:s3.us-west-2.uploads"
	MinIOPutID     = "1822F2B9B8C8D1A0.dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8.fa0a1339"
	MinIOPutSource = "minio:s3.uploads"
	PutType        = "com.amazonaws.s3.ObjectCreated:Put"
	PutSubject     = "incoming/file name.json"
)

// SNSEnvelope wraps body as SNS writes it to SQS without raw message
// delivery.
func SNSEnvelope(body string) string {
	b, _ := json.Marshal(body)
	return `{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",` +
		`"TopicArn":"arn:aws:sns:us-west-2:123456789012:uploads","Subject":"Amazon S3 Notification","Message":` + string(b) +
		`,"Timestamp":"2024-05-01T12:34:57.001Z","SignatureVersion":"1","Signature":"EXAMPLE",` +
		`"SigningCertURL":"https://sns.us-west-2.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",` +
		`"UnsubscribeURL":"https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=EXAMPLE"}`
}

// Record0 is the first record of a notification, compacted as
// encoding/json leaves a RawMessage (as is: the records above are compact).
func Record0(body string) (string, error) {
	var m struct{ Records []json.RawMessage }
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return "", err
	}
	if len(m.Records) == 0 {
		return "", nil
	}
	return string(m.Records[0]), nil
}
