-- An account holds at most one subject of each identity provider (sign-in has always
-- refused to link a second one; this also holds when two sign-ins race to link). A
-- second subject that such a race may have linked before is removed first: the older
-- link stays.
DELETE FROM external_identities
 WHERE EXISTS (SELECT 1 FROM external_identities older
                WHERE older.provider_id = external_identities.provider_id
                  AND older.user_id = external_identities.user_id
                  AND (older.created_at < external_identities.created_at
                       OR (older.created_at = external_identities.created_at
                           AND older.subject < external_identities.subject)));
CREATE UNIQUE INDEX external_identities_one_per_provider ON external_identities (provider_id, user_id);
