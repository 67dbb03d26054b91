package cluster

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newTransport listens for Raft on cfg.RaftAddr.
func (n *Node) newTransport(logger hclog.Logger) (*raft.NetworkTransport, error) {
	advertise, err := net.ResolveTCPAddr("tcp", n.cfg.RaftAdvertise)
	if err != nil {
		return nil, fmt.Errorf("resolve raft advertise address %q: %w", n.cfg.RaftAdvertise, err)
	}
	t, err := raft.NewTCPTransportWithLogger(n.cfg.RaftAddr, advertise, 3, 10*time.Second, logger)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", n.cfg.RaftAddr, err)
	}
	return t, nil
}
