package main

// A minimal service-telemetry factory: the Collector's own logs (zap, JSON on stderr, level from
// service::telemetry::logs::level, default info), no own metrics or traces. It stands in for
// otelconftelemetry, which would pull cloud resource detectors and the Kubernetes client into
// the build for nothing these tests use.

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
)

type logsConfig struct {
	Level string `mapstructure:"level"`
}

type telemetryConfig struct {
	Logs logsConfig `mapstructure:"logs"`
}

func newTelemetryFactory() telemetry.Factory {
	return telemetry.NewFactory(
		func() component.Config { return &telemetryConfig{Logs: logsConfig{Level: "info"}} },
		telemetry.WithCreateLogger(func(_ context.Context, set telemetry.LoggerSettings, cfg component.Config) (*zap.Logger, component.ShutdownFunc, error) {
			zc := zap.NewProductionConfig()
			zc.Encoding = "console"
			zc.Sampling = nil
			lvl, err := zap.ParseAtomicLevel(cfg.(*telemetryConfig).Logs.Level)
			if err != nil {
				return nil, nil, err
			}
			zc.Level = lvl
			build := set.BuildZapLogger
			if build == nil {
				build = func(c zap.Config, o ...zap.Option) (*zap.Logger, error) { return c.Build(o...) }
			}
			l, err := build(zc)
			if err != nil {
				return nil, nil, err
			}
			return l, func(context.Context) error { _ = l.Sync(); return nil }, nil
		}),
	)
}
