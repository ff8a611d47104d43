"""The real-time fraud engine: an event log (in-process | Kafka), an online feature store
(in-process | Redis) and the stream engine that scores each transaction as it arrives."""
