-- Schema version 2: each wallet's controls (RevokeDevice, FreezeWallet, UnfreezeWallet),
-- sealed like every record (src/store/controls.rs).
CREATE TABLE wallet_controls (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL);
