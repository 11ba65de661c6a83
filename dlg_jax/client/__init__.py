"""The federated client: its gradients, its defenses, and what it shares."""
