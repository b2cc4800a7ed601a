package main

import (
	"os"

	"zonekit/internal/cli/zconfigure"
)

func main() { os.Exit(zconfigure.Main()) }
