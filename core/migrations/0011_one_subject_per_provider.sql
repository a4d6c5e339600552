-- An account holds at most one subject of each identity provider (sign-in has always
-- refused to link a second one; this also holds when two sign-ins race to link).
CREATE UNIQUE INDEX external_identities_one_per_provider ON external_identities (provider_id, user_id);
