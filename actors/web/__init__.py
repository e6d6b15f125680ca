"""The operations-center screen and the residents' pages (issue 10, work in progress): pages
drawn from the topology, and a hub of live events served over Server-Sent Events."""
