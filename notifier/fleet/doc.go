// Package fleet lets the instances of one fleet enrich each event once: the instance
// holding the lease (notifier.fleet_lease, migration 0006) leads. It alone listens,
// reads the log and enriches; it streams each burst it publishes, encoded once, to
// the others over HTTP (Leader, at StreamPath), and they publish the same messages to
// their own hubs (Follow), so that the database does the same work per event with one
// instance or ten.
//
// The lease lapses unless its holder renews it (Lease.Acquire, every third of its
// TTL); a leader that stops releases it (Lease.Release). A follower whose stream ends
// reads the lease again: it follows the new holder, takes the lease once it lapsed,
// or, while no leader can be reached, reads the log itself, as an instance without a
// fleet does, so that its clients never wait for a takeover.
//
// Order: a follower asks for every message after its hub's head and gets them in id
// order, from the leader's ring or, behind it, from the log (LeaderConfig.Backlog),
// then the live stream; a record is queued for every follower under the lock that
// orders Publish, so none is missed or repeated between the backlog and the stream.
//
// Trust: a stream is opened only with a token made with the fleet key (a MAC over the
// time, good for a minute either side), so an unauthenticated client can neither read
// every account's events nor feed forged ones to a follower. The lease table is
// readable and writable by the runtime role only.
package fleet
