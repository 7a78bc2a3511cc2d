"""Local stand-ins for the cloud APIs slabot talks to (tests and the demo): they speak the wire format."""
