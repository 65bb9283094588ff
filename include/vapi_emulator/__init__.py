"""vapi-emulator: a local implementation of the Vapi Analytics API over call records."""
