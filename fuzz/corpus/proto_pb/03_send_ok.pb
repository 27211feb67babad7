Š
dm:alice:bob*ûÌ°Õª3 y