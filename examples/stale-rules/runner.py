# The worker from the post-mortem: import the freshly written rule and use it.
import rule

print(rule.threshold)
