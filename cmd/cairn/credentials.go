package main

import (
	"net/http"
	"strings"
)

// envUser names the variable that holds the commands' credentials, as
// --user does.
const envUser = "CAIRN_USER"

// apiUser is "name:password" for the HTTP API's Basic auth (--user or
// CAIRN_USER), empty when the node's API is open. It is set once per
// command run, before the command talks to a node.
var apiUser string

// authorize adds the command's credentials to a request for a node.
func authorize(req *http.Request) {
	if apiUser == "" {
		return
	}
	name, password, _ := strings.Cut(apiUser, ":")
	req.SetBasicAuth(name, password)
}
