"""Split computing: cut a network between device and server, export, serve and run both halves."""
