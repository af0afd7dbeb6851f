// The TypeScript MCP SDK as a client of tl-mcp: runs a plan, prints what it saw as one JSON object.
//
// node client.mjs '<plan>'   where the plan is
//   {"stdio": {"command": "...", "args": [...], "env": {...}}}   or   {"http": {"url": "...", "headers": {...}}}
//   "steps": [{"op": "listTools"} | {"op": "callTool", "name": "...", "arguments": {...}}
//             | {"op": "setLoggingLevel", "level": "debug"} | {"op": "discoverProtectedResource"}
//             | {"op": "getPrompt", "name": "...", "arguments": {...}} | {"op": "readResource", "uri": "..."}]
// Output: {"connect": {...}, "steps": [{"result": ...} | {"error": {...}}], "logs": [params of notifications/message]}
// A failing step is recorded and the plan goes on; only a broken plan exits non-zero.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { discoverOAuthProtectedResourceMetadata } from "@modelcontextprotocol/sdk/client/auth.js";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";

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

const needsConnection = plan.steps.some((s) => s.op !== "discoverProtectedResource");
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

for (const step of plan.steps) {
  try {
    if (step.op === "discoverProtectedResource") {
      out.steps.push({ result: await discoverOAuthProtectedResourceMetadata(plan.http.url) });
      continue;
    }
    if (!connected) {
      out.steps.push({ error: { kind: "NotConnected", code: null, message: "connect failed", data: null } });
      continue;
    }
    if (step.op === "listTools") {
      out.steps.push({ result: await client.listTools() });
    } else if (step.op === "callTool") {
      out.steps.push({ result: await client.callTool({ name: step.name, arguments: step.arguments ?? {} }) });
    } else if (step.op === "getPrompt") {
      out.steps.push({ result: await client.getPrompt({ name: step.name, arguments: step.arguments ?? {} }) });
    } else if (step.op === "readResource") {
      out.steps.push({ result: await client.readResource({ uri: step.uri }) });
    } else if (step.op === "setLoggingLevel") {
      out.steps.push({ result: await client.setLoggingLevel(step.level) });
    } else {
      throw new Error(`unknown op ${step.op}`);
    }
  } catch (err) {
    out.steps.push(failure(err));
  }
}

if (connected) {
  await client.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
