// The TypeScript MCP SDK as a client of tl-mcp: runs a plan, prints what it saw as one JSON object.
//
// node client.mjs '<plan>'   where the plan is
//   {"stdio": {"command": "...", "args": [...], "env": {...}}}   or   {"http": {"url": "...", "headers": {...}}}
//   "steps": [{"op": "listTools"} | {"op": "callTool", "name": "...", "arguments": {...}}
//             | {"op": "setLoggingLevel", "level": "debug"} | {"op": "discoverProtectedResource"}
//             | {"op": "getPrompt", "name": "...", "arguments": {...}} | {"op": "readResource", "uri": "..."}
//             | {"op": "checkOutputSchema", "name": "<tool>", "structuredContent": {...}}]
// Output: {"connect": {...}, "steps": [{"result": ...} | {"error": {...}}], "logs": [params of notifications/message]}
// A failing step is recorded and the plan goes on; only a broken plan exits non-zero.
//
// With "interactive": true and no "steps", the steps come one JSON object a line on stdin (so a test can
// build the next step from what the last one returned) and each answer is one JSON line on stdout: first
// the connect, then per step its {"result"} or {"error"} with the "logs" seen meanwhile.
// A callTool step also carries the "progress" notifications of the call and "validated": whether the SDK
// held the tool's outputSchema (from listTools), so that it checked structuredContent against it (a
// mismatch makes callTool throw, recorded as the step's error).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { discoverOAuthProtectedResourceMetadata } from "@modelcontextprotocol/sdk/client/auth.js";
import { CallToolResultSchema, LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { createInterface } from "node:readline";

const plan = JSON.parse(process.argv[2]);
const out = { connect: null, steps: [], logs: [] };

function failure(err) {
  return {
    error: {
      kind: err?.constructor?.name ?? typeof err,
      code: err?.code ?? null,
      message: String(err?.message ?? err),
      data: err?.data ?? null,
    },
  };
}

function transport() {
  if (plan.stdio) {
    return new StdioClientTransport({ ...plan.stdio, stderr: "inherit" });
  }
  return new StreamableHTTPClientTransport(new URL(plan.http.url), {
    requestInit: { headers: plan.http.headers ?? {} },
  });
}

const client = new Client({ name: "tl-mcp-ts-test", version: "1.0.0" }, { capabilities: {} });
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
  out.logs.push(n.params);
});

const interactive = plan.interactive === true;
const needsConnection = interactive || plan.steps.some((s) => s.op !== "discoverProtectedResource");
let connected = false;
if (needsConnection) {
  try {
    // The SDK hands the negotiated version to the transport and offers no getter for it.
    const wire = transport();
    let negotiated = null;
    const setVersion = wire.setProtocolVersion?.bind(wire);
    wire.setProtocolVersion = (version) => {
      negotiated = version;
      setVersion?.(version);
    };
    await client.connect(wire);
    connected = true;
    out.connect = {
      protocolVersion: negotiated,
      capabilities: client.getServerCapabilities() ?? null,
      serverInfo: client.getServerVersion() ?? null,
    };
  } catch (err) {
    out.connect = failure(err);
  }
}

async function run(step) {
  try {
    if (step.op === "discoverProtectedResource") {
      return { result: await discoverOAuthProtectedResourceMetadata(plan.http.url) };
    }
    if (!connected) {
      return { error: { kind: "NotConnected", code: null, message: "connect failed", data: null } };
    }
    if (step.op === "listTools") {
      return { result: await client.listTools(step.params) };
    } else if (step.op === "callTool") {
      const progress = [];
      const validated = client.getToolOutputValidator(step.name) !== undefined;
      const options = {
        timeout: step.timeoutMs ?? 60_000,
        resetTimeoutOnProgress: true,
        onprogress: (p) => progress.push(p),
      };
      const params = { name: step.name, arguments: step.arguments ?? {} };
      try {
        const result = await client.callTool(params, CallToolResultSchema, options);
        return { result, progress, validated };
      } catch (err) {
        return { ...failure(err), progress, validated };
      }
    } else if (step.op === "checkOutputSchema") {
      // The validator callTool uses, on content the test chose: shows that it can say no.
      const validator = client.getToolOutputValidator(step.name);
      return { result: validator ? validator(step.structuredContent) : null };
    } else if (step.op === "getPrompt") {
      return { result: await client.getPrompt({ name: step.name, arguments: step.arguments ?? {} }) };
    } else if (step.op === "readResource") {
      return { result: await client.readResource({ uri: step.uri }) };
    } else if (step.op === "setLoggingLevel") {
      return { result: await client.setLoggingLevel(step.level) };
    }
    throw new Error(`unknown op ${step.op}`);
  } catch (err) {
    return failure(err);
  }
}

if (interactive) {
  const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");
  say({ connect: out.connect });
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const answer = await run(JSON.parse(line));
    say({ ...answer, logs: out.logs.splice(0) });
  }
} else {
  for (const step of plan.steps) {
    out.steps.push(await run(step));
  }
}

if (connected) {
  await client.close();
}
if (!interactive) {
  process.stdout.write(JSON.stringify(out) + "\n");
}
