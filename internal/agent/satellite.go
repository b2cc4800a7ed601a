package agent

import (
	"context"
	"fmt"

	"zonekit/internal/api"
	"zonekit/internal/client"
)

// SatelliteConfig asks the zone what this device does as a satellite
// (its roles, the content URL agents use, its parent), as the
// administrator set it with 'zman satellite-add-role'.
func (a *Agent) SatelliteConfig(ctx context.Context) (api.Satellite, error) {
	st, err := a.State()
	if err != nil {
		return api.Satellite{}, err
	}
	var sat api.Satellite
	err = a.firstAnswer(st, func(c *client.Client) error {
		return c.Get(ctx, api.Prefix+"/device/satellite", &sat)
	})
	if err != nil {
		return api.Satellite{}, fmt.Errorf("satellite configuration: %w", err)
	}
	return sat, nil
}
