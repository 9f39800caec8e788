package sample

import (
	_ "github.com/golang/snappy"
	_ "github.com/labstack/echo/v4"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/prometheus/prompb"
	_ "github.com/prometheus/prometheus/promql"
	_ "github.com/prometheus/prometheus/tsdb"
	_ "gopkg.in/yaml.v3"
)
