"""ec2-quarantine: everything that runs in Lambda (what Chalice packages)."""
