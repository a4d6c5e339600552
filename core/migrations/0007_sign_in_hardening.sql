-- Sign-in hardening after the outside security review.
-- Login flows are bound to the browser that started them (the hash of a secret kept in
-- its login cookie) and go through stages (a SAML response is verified, then finished
-- in that browser). Flows live ten minutes, so the old table is simply replaced.
DROP TABLE login_flows;
CREATE TABLE login_flows (
    state_hash TEXT PRIMARY KEY,
    provider_id TEXT NOT NULL,
    sealed_secrets TEXT NOT NULL,
    redirect_to TEXT NOT NULL,
    browser_binding_hash TEXT NOT NULL,
    stage TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- External identities are keyed by (provider, subject), not by e-mail.
CREATE TABLE external_identities (
    provider_id TEXT NOT NULL REFERENCES auth_providers(id) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (provider_id, subject)
);
CREATE INDEX external_identities_by_user ON external_identities (user_id);

-- Which identity provider vouched for a user's e-mail when it was last set (none for
-- local accounts and unverified e-mails): an account is linked into by e-mail only if
-- that provider is itself trusted to link. Accounts a provider made before subjects
-- were kept wait for that provider (by id) to claim them at its first verified sign-in.
ALTER TABLE users ADD COLUMN email_verified_by TEXT;
ALTER TABLE users ADD COLUMN awaiting_subject_of TEXT;
UPDATE users SET awaiting_subject_of = (SELECT id FROM auth_providers WHERE auth_providers.name = users.provider)
    WHERE password_hash IS NULL AND provider <> 'local';

-- Linking by e-mail and unverified e-mails are off unless a provider turns them on.
ALTER TABLE auth_providers ADD COLUMN link_by_email BIGINT NOT NULL DEFAULT 0;
ALTER TABLE auth_providers ADD COLUMN allow_unverified_email BIGINT NOT NULL DEFAULT 0;

-- Provider names `local`, `gatekey` and `api` are reserved: a provider that had one is
-- renamed after its id, and the password-less accounts it made follow it.
UPDATE users SET provider = 'renamed-' || (SELECT id FROM auth_providers WHERE auth_providers.name = users.provider)
    WHERE password_hash IS NULL AND provider IN ('local', 'gatekey', 'api')
      AND EXISTS (SELECT 1 FROM auth_providers WHERE auth_providers.name = users.provider);
UPDATE auth_providers SET name = 'renamed-' || id WHERE name IN ('local', 'gatekey', 'api');
