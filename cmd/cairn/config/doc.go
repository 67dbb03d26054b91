// Package config loads a Cairn node's configuration: built-in defaults,
// then one TOML file, then CAIRN_* environment variables, then defaults
// derived from the rest; and it validates the result.
//
// # Keys and variables
//
// The file has one table per section ([node], [cluster], [db], [http],
// [log]). Every key has an environment variable that overrides it:
// "CAIRN_" + section + "_" + key, upper-case, so node.http_addr is
// CAIRN_NODE_HTTP_ADDR. A list in the environment (CAIRN_CLUSTER_NODES) has
// its entries separated by commas or newlines. Other CAIRN_* variables are
// errors, except those in IgnoredEnv and the service variables Kubernetes
// sets (CAIRN_SERVICE_HOST, CAIRN_PORT_4001_TCP, ...).
//
// # Values
//
// Durations are Go duration strings ("5s", "1m30s"). Sizes are integers of
// bytes or strings with a unit ("10MB", "10MiB"; see ParseSize). Booleans
// are true or false (in the environment also 1, 0, t, f and the like, as
// strconv.ParseBool reads them).
//
// Any string value, in the file or in the environment, may reference
// environment variables:
//
//	${VAR}          the value of VAR; an error naming VAR and the key if unset
//	${VAR:-default} the value of VAR, or default if VAR is unset or empty
//	$$              a literal $
//
// Expansion happens after the TOML is parsed, so the file stays valid TOML;
// a non-string key may be given as a string to expand
// (timeout = "${TIMEOUT:-5s}").
//
// # Errors and secrets
//
// Load and Validate report every problem at once in a *ValidationError.
// Each Problem names the key, the Origin of the value (default, file and
// line, or environment variable) and what is wrong.
//
// Secrets (cluster.secret, any Secret field, and the password in db.url)
// never appear in an error, in Redacted, or in the String or JSON form of a
// Config: they show as "[redacted]".
//
// # Adding keys
//
// Config is described by its struct tags: `toml` names the section or key,
// `default` holds a default as it would be written in the environment, and
// `secret:"true"` (or the type Secret) marks a secret, `secret:"url"` a URL
// whose password is secret. The environment variable, origin tracking, the
// redacted output and JSON are derived from the tags; a new key needs only
// its field, and a check in Validate if its values have rules.
package config
