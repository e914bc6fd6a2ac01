"""vidrec: personalised video recommendations, served on Kubernetes."""

__version__ = "0.1.0"
