"use strict";

// Lambda handlers of the webhook-function example. Junction's lambda sink
// invokes them with the CloudEvent in the JSON format (payload: event) or
// with the event's data alone (payload: data).

const crypto = require("node:crypto");

// labels derives labels from a GitHub push body.
function labels(push) {
  const out = [];
  const ref = (push && push.ref) || "";
  if (ref === "refs/heads/main" || ref === "refs/heads/master") out.push("default-branch");
  if (ref.startsWith("refs/tags/")) out.push("release");
  const commits = (push && push.commits) || [];
  if (commits.some((c) => /\b(fix|fixes|bug)\b/i.test(c.message || ""))) out.push("bugfix");
  if (push && push.forced) out.push("force-push");
  return out;
}

// labelPush answers a push with a new CloudEvent (JSON format), which the lambda
// sink returns to Junction as the reply.
exports.labelPush = async (event) => {
  const isCloudEvent = event && typeof event === "object" && event.specversion;
  const push = isCloudEvent ? event.data : event;
  const repo = (push && push.repository && push.repository.full_name) || "unknown";
  return {
    specversion: "1.0",
    id: isCloudEvent ? `${event.id}-labelled` : crypto.randomUUID(),
    source: "/functions/label-push",
    type: "com.example.push.labelled",
    subject: repo,
    time: new Date().toISOString(),
    datacontenttype: "application/json",
    data: {
      repository: repo,
      ref: (push && push.ref) || null,
      commits: ((push && push.commits) || []).length,
      labels: labels(push),
      trigger: isCloudEvent ? { id: event.id, type: event.type } : null,
    },
  };
};

// The handlers below are used by Junction's tests.

// echo answers with a CloudEvent whose data is exactly what it was given.
exports.echo = async (event) => ({
  specversion: "1.0",
  id: crypto.randomUUID(),
  source: "/functions/echo",
  type: "dev.junction.test.echo",
  datacontenttype: "application/json",
  data: { received: event === undefined ? null : event },
});

// plain answers with a result that is not a CloudEvent: no reply.
exports.plain = async () => ({ ok: true });

// invalid answers with a CloudEvent that lacks id and type.
exports.invalid = async () => ({ specversion: "1.0", source: "/functions/invalid" });

// boom fails: the invocation answers with FunctionError Unhandled.
exports.boom = async () => {
  throw new Error("boom: the handler failed");
};
