-- Prosody configuration for jidgate's run command and integration tests.
--
-- Everything that differs between runs comes from the environment
-- (Prosody reads ENV_NAME as os.getenv("NAME")):
--   JIDGATE_PROSODY_DIR     data directory: accounts, rosters, pid file, socket
--   JIDGATE_PROSODY_PORT    c2s port, bound on 127.0.0.1 only (default 5222)
--   JIDGATE_XMPP_DOMAIN     the virtual host (default "localhost")
--   JIDGATE_PROSODY_CERT    optional certificate chain (PEM); when set together
--   JIDGATE_PROSODY_KEY     with its key, c2s offers and requires StartTLS
--   JIDGATE_PROSODY_ADMIN   the admin JID allowed to run XEP-0133 commands
--                           (default admin@<domain>)

local data_dir = ENV_JIDGATE_PROSODY_DIR or "var/prosody"
local domain = ENV_JIDGATE_XMPP_DOMAIN or "localhost"
local cert = ENV_JIDGATE_PROSODY_CERT
local key = ENV_JIDGATE_PROSODY_KEY

-- Prosody refuses to start as root unless told; the run command and the tests
-- start it directly, without an init system.
run_as_root = true
daemonize = false
pidfile = data_dir .. "/prosody.pid"
data_path = data_dir
admin_socket = data_dir .. "/prosody.sock"
-- Certificates are given explicitly below; no directory to scan.
certificates = data_dir
log = { { levels = { min = ENV_JIDGATE_PROSODY_LOG_LEVEL or "warn" }, to = "console" } }

interfaces = { "127.0.0.1" }
c2s_ports = { tonumber(ENV_JIDGATE_PROSODY_PORT or "5222") }
s2s_ports = {}
c2s_direct_tls_ports = {}
http_ports = {}
https_ports = {}

network_backend = "epoll"
-- Prosody leaves Nagle's algorithm on; small stanzas then wait up to 40 ms.
network_settings = { nagle = false }

admins = { ENV_JIDGATE_PROSODY_ADMIN or ("admin@" .. domain) }

modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping";
	"adhoc"; "admin_adhoc"; "presence"; "message"; "iq";
	"offline"; "carbons"; "mam";
	-- The WebSocket facade (docs/facade.md): stream management (XEP-0198,
	-- mod_smacks from prosody-modules) so that a stanza is acknowledged only
	-- once the phone has it; blocking (XEP-0191); vCards (XEP-0054).
	"smacks"; "blocklist"; "vcard";
}
-- Unacknowledged stanzas of a facade session that ends are stored offline
-- (mod_smacks hands them to mod_offline when it was the user's last
-- session); jidgate never asks to resume at the XMPP level. mod_smacks
-- keeps at most smacks_max_queue_size (default 500) unacknowledged
-- stanzas per session and silently forgets the oldest beyond it; jidgate
-- catches up on those from the archive (mod_mam) at the next login
-- (docs/facade.md, "Catching up from the archive"), so the default
-- stands: each slot costs every session memory (16 bytes, allocated when
-- stream management is enabled).
-- No in-band registration (XEP-0077) of any kind. jidgate alone creates,
-- deletes and re-keys accounts (XEP-0133 over its admin session, which uses
-- mod_admin_adhoc, not mod_register). mod_register would let every logged-in
-- client change its own password or delete its own account, behind
-- jidgate's back, even with allow_registration = false (that only stops new
-- accounts): it loads mod_user_account_management regardless.
modules_disabled = {
	"s2s"; "posix";
	"register"; "register_ibr"; "user_account_management"; "invites_register";
}

authentication = "internal_hashed"
storage = "internal"
allow_registration = false

if cert and key then
	c2s_require_encryption = true
	allow_unencrypted_plain_auth = false
	ssl = { certificate = cert; key = key }
else
	-- Plaintext is only ever offered on 127.0.0.1 (see interfaces above).
	c2s_require_encryption = false
	allow_unencrypted_plain_auth = true
end

-- jidgate's admin session and binder sessions come in bursts.
limits = {}

VirtualHost (domain)
	if cert and key then
		ssl = { certificate = cert; key = key }
	end
