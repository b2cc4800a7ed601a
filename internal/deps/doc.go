// Package deps holds no code: its test checks that dependencies between
// zonekit's packages point one way (docs/design.md, "Package map").
package deps
