"""High availability: the Lease (client-go's algorithm), the election that runs a replica as
standby then leader, and what a standby serves and forwards."""
