"""After deployment: drift statistics, drift reports, alert rules and the Grafana dashboard."""
