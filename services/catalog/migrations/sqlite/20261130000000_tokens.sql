-- Access tokens. Only a hash of the secret is stored (hex SHA-256); the secret is shown once,
-- at creation. Permissions name databases by id, so a token for a database does not open a
-- later database of the same name. Text form: comma-separated `action:resource`, where the
-- action is `read` or `write` and the resource a database id or `*` (every database).
-- Creating, updating and revoking a token bump catalog_version, so every router and querier
-- reloads its token cache within the change feed's interval.
CREATE TABLE tokens (
    id          TEXT   PRIMARY KEY,
    description TEXT   NOT NULL,
    token_hash  TEXT   NOT NULL,
    permissions TEXT   NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    CONSTRAINT tokens_hash_unique UNIQUE (token_hash)
);
