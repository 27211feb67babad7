’(
dm:alice:bob+"alice*hi0üÌ°Õª3:a1