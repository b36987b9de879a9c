// Calls the service the way a frontend does: supabase.functions.invoke('check-clips-status').
// argv: <supabase url (the service)> <anon key> <user jwt> <project id>
// Prints {"data": …, "error": …, "status": …} as one JSON line.
import { createClient } from "@supabase/supabase-js";
import ws from "ws";

const [url, anonKey, userJwt, projectId] = process.argv.slice(2);
// Node 20 has no native WebSocket: supabase-js needs `ws` as its realtime transport.
const supabase = createClient(url, anonKey, {
  realtime: { transport: ws },
  global: { headers: { Authorization: `Bearer ${userJwt}` } },
  auth: { persistSession: false, autoRefreshToken: false },
});
const { data, error } = await supabase.functions.invoke("check-clips-status", {
  body: { project_id: projectId },
});
let status = null;
let body = null;
if (error && error.context) {
  status = error.context.status;
  body = await error.context.json().catch(() => null);
}
console.log(JSON.stringify({ data, error: error ? error.name : null, status, body }));
process.exit(0);
