-- The cosigner's store on PostgreSQL, schema version 1: one table per table of the redb
-- store, with the same names and the same values. Sealed records (XChaCha20-Poly1305
-- under the store key, the table and key as associated data) are stored as they are:
-- the database never holds a plaintext share. Keys compare bytewise (COLLATE "C"), as
-- in redb. Run by sign-service itself (src/store/postgres.rs), in one transaction that
-- records it in schema_version.

-- KDF salt, store id, key check, identity (sealed), take counter, wrapped data key.
CREATE TABLE meta (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
-- Wallets (sealed: the cosigner's key shares and aux info).
CREATE TABLE wallets (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
-- EVM spend per wallet/day (sealed totals).
CREATE TABLE daily_spend (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
-- Bitcoin spend per wallet/day (sealed totals and txids).
CREATE TABLE bitcoin_daily_spend (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
-- Prime sets for aux info (sealed), taken lowest first.
CREATE TABLE prime_pool (key bigint PRIMARY KEY CHECK (key >= 0), value bytea NOT NULL);
-- Unused presignatures, wallet/account/party/id (sealed).
CREATE TABLE presignatures (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
-- Consumed presignature ids -> ms since the epoch.
CREATE TABLE presignatures_used (key text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
-- Derivation path of each unused presignature not at the root.
CREATE TABLE presignature_paths (key text COLLATE "C" PRIMARY KEY, value text NOT NULL);
-- Accepted request nonces ("scope nonce-hex") -> expiry ms.
CREATE TABLE replay_nonces (key text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
-- Registration credentials used -> expiry ms.
CREATE TABLE registrations_used (key text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
-- Enrollments (sealed) and their expiry ms.
CREATE TABLE enrollments (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
CREATE TABLE enrollment_expiry (key text COLLATE "C" PRIMARY KEY, value bigint NOT NULL);
