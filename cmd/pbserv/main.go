package main

import (
	"os"

	"zonekit/internal/cli/pbserv"
)

func main() { os.Exit(pbserv.Main()) }
