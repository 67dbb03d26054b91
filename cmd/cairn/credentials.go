package main

import (
	"errors"
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

// nodeClient is the HTTP client of the commands. A follower answers some
// calls (backup create, maintenance) with a redirect to the leader; Go
// drops the Authorization header when a redirect changes host, so the
// client sends the credentials again to the leader the node named.
var nodeClient = &http.Client{
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		authorize(req)
		return nil
	},
}
