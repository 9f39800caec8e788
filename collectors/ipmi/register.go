package ipmi

import (
	"github.com/greenloop/greenloop/collectors"
)

func init() {
	collectors.Register(Type, func(cfg collectors.TargetConfig, deps collectors.Deps) (collectors.Collector, error) {
		return New(Config{
			Host:        cfg.Host,
			Port:        cfg.Port,
			Username:    cfg.Username,
			Password:    cfg.Password,
			CipherSuite: cfg.CipherSuite,
			Timeout:     cfg.Timeout,
		}, deps)
	})
}
