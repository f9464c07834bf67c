"""The demo: detection, tracking, features, GLoT, rendering, caching and exports for videos."""
