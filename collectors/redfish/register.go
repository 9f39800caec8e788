package redfish

import (
	"github.com/greenloop/greenloop/collectors"
)

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		return New(Config{
			Endpoint:           cfg.Endpoint,
			Username:           cfg.Username,
			Password:           cfg.Password,
			Auth:               cfg.Auth,
			CAFile:             cfg.CAFile,
			InsecureSkipVerify: cfg.InsecureSkipVerify,
			Timeout:            cfg.Timeout,
			MinInterval:        cfg.MinInterval,
			MaxInFlight:        cfg.MaxInFlight,
		}, deps)
	})
}
