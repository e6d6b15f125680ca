"""The city: schemas, camera and weather-station sources, district fusion, police gateways (issue: the city)."""
