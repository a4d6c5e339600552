// A real OpenID Connect provider for GateKey's tests: `oidc-provider` (a certified
// implementation) on loopback, with dev interactions, fixed test accounts and a
// control endpoint that makes its token endpoint misbehave on purpose
// (bad signature, wrong audience, expired token, wrong nonce) and one that changes an
// account's claims (its e-mail and whether it is verified).
//
// Env: PORT, REDIRECT_URI, CLIENT_SECRET. Prints `oidc-provider ready` when listening.
import Provider from 'oidc-provider';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, decodeJwt, importJWK } from 'jose';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key', alg: 'RS256', use: 'sig' };
const signingKey = await importJWK(jwk, 'RS256');

const accounts = {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Admin', groups: ['staff', 'vpn-admins'] },
  bob: { email: 'bob@example.com', email_verified: true, name: 'Bob Builder', groups: ['staff'] },
  eve: { email: 'eve@example.com', email_verified: true, name: 'Eve Outsider', groups: ['contractors'] },
  // Claims another account's e-mail: a local account's, or the bootstrap admin's.
  mallory: { email: 'admin@gatekey.invalid', email_verified: true, name: 'Mallory', groups: ['staff', 'vpn-admins'] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'gatekey',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks: { keys: [jwk] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['gatekey-test-cookies'] },
  async findAccount(_ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...account }; } };
  },
});
provider.proxy = false;

// The misbehaviour the next token response gets; set by POST /__mode?mode=…
let mode = 'normal';
provider.use(async (ctx, next) => {
  if (ctx.path === '/__mode') {
    mode = ctx.query.mode;
    ctx.body = { mode };
    return;
  }
  if (ctx.path === '/__claims') {
    const account = accounts[ctx.query.account];
    account.email = ctx.query.email;
    account.email_verified = ctx.query.email_verified === 'true';
    ctx.body = account;
    return;
  }
  await next();
  if (ctx.path === '/token' && ctx.body && ctx.body.id_token && mode !== 'normal') {
    const claims = decodeJwt(ctx.body.id_token);
    const resign = (changes) => new SignJWT({ ...claims, ...changes })
      .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
      .sign(signingKey);
    if (mode === 'tamper_signature') {
      const [header, payload, signature] = ctx.body.id_token.split('.');
      const forged = Buffer.from(JSON.stringify({ ...claims, email: 'mallory@example.com' })).toString('base64url');
      ctx.body = { ...ctx.body, id_token: [header, forged, signature].join('.') };
      void payload;
    } else if (mode === 'wrong_audience') {
      ctx.body = { ...ctx.body, id_token: await resign({ aud: 'someone-else' }) };
    } else if (mode === 'expired') {
      const past = Math.floor(Date.now() / 1000) - 3600;
      ctx.body = { ...ctx.body, id_token: await resign({ iat: past - 60, exp: past }) };
    } else if (mode === 'wrong_nonce') {
      ctx.body = { ...ctx.body, id_token: await resign({ nonce: 'not-the-nonce' }) };
    }
    mode = 'normal';
  }
});

provider.listen(port, '127.0.0.1', () => console.log('oidc-provider ready'));
