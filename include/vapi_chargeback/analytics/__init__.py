"""Typed access to the Vapi Analytics API: models of the OpenAPI spec and an HTTP client."""
