package main

import (
	"os"

	"zonekit/internal/cli/zman"
)

func main() { os.Exit(zman.Main()) }
