"""Recording fakes at the process boundaries (provider HTTP APIs, the agent) and the pipeline harness."""
