"""CDK constructs and stacks of DataDominion, and the packaging of what they deploy."""
