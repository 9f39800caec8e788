package pdu

import (
	"github.com/greenloop/greenloop/collectors"
)

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		return New(Config{
			Address:      cfg.Address,
			Version:      cfg.Version,
			Community:    cfg.Community,
			Username:     cfg.Username,
			AuthProtocol: cfg.AuthProtocol,
			AuthPassword: cfg.AuthPassword,
			PrivProtocol: cfg.PrivProtocol,
			PrivPassword: cfg.PrivPassword,
			Context:      cfg.Context,
			Profile:      cfg.Profile,
			Timeout:      cfg.Timeout,
			Retries:      cfg.Retries,
		}, deps)
	})
}
