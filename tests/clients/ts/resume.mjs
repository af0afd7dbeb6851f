// A tool call resumed the way the TypeScript MCP SDK offers it: a request's `onresumptiontoken`, then a new
// transport on the same session and the same request sent again with `resumptionToken` (a GET with
// Last-Event-ID that the SDK maps back onto the new request).
//
// node resume.mjs '<plan>'   where the plan is
//   {"url": "...", "headers": {...}, "name": "<tool>", "arguments": {...}, "dropAfter": <progress messages>}
// Output: {"sessionId", "token", "before": [progress messages of the first connection],
//          "after": [progress messages of the resumed one], "result": CallToolResult | null, "error": ... | null}
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema, ProgressNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

const plan = JSON.parse(process.argv[2]);
const url = new URL(plan.url);
const requestInit = { headers: plan.headers ?? {} };
const call = { method: "tools/call", params: { name: plan.name, arguments: plan.arguments ?? {} } };
const info = { name: "tl-mcp-ts-resume", version: "1.0.0" };
const out = { sessionId: null, token: null, before: [], after: [], result: null, error: null };

function failure(err) {
  return { kind: err?.constructor?.name ?? typeof err, code: err?.code ?? null, message: String(err?.message ?? err) };
}

try {
  // First connection: the call streams until `dropAfter` progress messages carried text, then the
  // transport is aborted (the connection drops; the server keeps the session and the running call).
  const first = new StreamableHTTPClientTransport(url, { requestInit });
  let version = null;
  const setVersion = first.setProtocolVersion.bind(first);
  first.setProtocolVersion = (v) => {
    version = v;
    setVersion(v);
  };
  const client1 = new Client(info, { capabilities: {} });
  await client1.connect(first);
  out.sessionId = first.sessionId;
  let latest = null;
  await new Promise((resolve, reject) => {
    client1
      .request(call, CallToolResultSchema, {
        timeout: 120_000,
        onresumptiontoken: (token) => {
          latest = token;
        },
        onprogress: (progress) => {
          if (!progress.message || out.token !== null) return;
          out.before.push(progress.message);
          if (out.before.length === plan.dropAfter) {
            out.token = latest;
            first.close().then(resolve, reject);
          }
        },
      })
      .then(
        () => reject(new Error(`the call finished before ${plan.dropAfter} progress messages`)),
        (err) => (out.token === null ? reject(err) : resolve()),
      );
  });

  // Second connection: the same session, the same request, resumed after the last event seen.
  const second = new StreamableHTTPClientTransport(url, { requestInit, sessionId: out.sessionId });
  const client2 = new Client(info, { capabilities: {} });
  // Replayed progress carries the first connection's progress token, which this client never issued,
  // so the SDK's own progress dispatch would drop it: read the notifications as they come.
  client2.setNotificationHandler(ProgressNotificationSchema, (n) => {
    if (n.params.message) out.after.push(n.params.message);
  });
  await client2.connect(second);
  second.setProtocolVersion(version);
  out.result = await client2.request(call, CallToolResultSchema, { timeout: 120_000, resumptionToken: out.token });
  await second.close();
} catch (err) {
  out.error = failure(err);
}
process.stdout.write(JSON.stringify(out) + "\n");
