// restsip from a bundler: Vite resolves the package's ES module and emits its .wasm as an asset.
import init, { Client } from "restsip-wasm";

const status = document.getElementById("status");
const relay = new URLSearchParams(location.search).get("relay");
try {
  await init();
  const client = new Client(relay);
  const email = `vite-${Date.now()}@example.net`;
  await client.signUp(email, "secret", {});
  const login = await client.logIn(email, "secret", { shared: false });
  const contacts = await client.contacts(email);
  status.textContent = `logged in as ${email} at ${login.url} with ${contacts.length} login`;
} catch (e) {
  status.textContent = `failed: ${e.code ?? ""} ${e.message}`;
}
