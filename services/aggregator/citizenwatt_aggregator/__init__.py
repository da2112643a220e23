"""The aggregator: MQTT readings in, validated rows and exact energy rollups out."""
