// Verify a Ledgix approval token with npm `jose` against the vault's JWKS, as a Node.js service would.
// Usage: node verify.mjs <jwks-url> <token> [issuer] [audience]; prints the payload as JSON, exits 1 if invalid.
import { createRemoteJWKSet, jwtVerify } from "jose";

const [jwksUrl, token, issuer = "alcv-vault", audience = "ledgix-sdk"] = process.argv.slice(2);
try {
  const jwks = createRemoteJWKSet(new URL(jwksUrl));
  const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer, audience, algorithms: ["EdDSA"] });
  console.log(JSON.stringify({ header: protectedHeader, payload }));
} catch (error) {
  console.error(String(error));
  process.exit(1);
}
