-- TEST STAND-IN for Citus's coordinator catalogue. THIS IS NOT CITUS.
--
-- pgwarden's CI has PostgreSQL but no Citus package. This file imitates the
-- small part of Citus's coordinator metadata API that pgwarden's citus
-- package uses: the pg_dist_node table and the node management functions,
-- with Citus's names, signatures and effects on pg_dist_node. It is loaded
-- into schema public of an ordinary database; pgwarden calls the functions
-- unqualified, so with real Citus they resolve to pg_catalog and here to
-- public.
--
-- Nothing else of Citus is imitated: there are no shards, no placements, no
-- metadata propagation to workers, no connections to the nodes.
--
-- The locking that matters for failover is imitated with an advisory lock:
-- citus_update_node on a primary takes pg_advisory_xact_lock(4242, groupid)
-- (exclusive, until the end of its transaction), where Citus takes
-- AccessExclusive metadata locks on every shard placed in the group; a
-- distributed statement in Citus waits for those locks, and its stand-in
-- here, citus_standin_route, waits for the advisory lock in shared mode.
--
-- It runs once in a fresh database; it is not idempotent.

CREATE TYPE noderole AS ENUM ('primary', 'secondary', 'unavailable');

-- Node ids are never reused (a removed node's id stays burnt).
CREATE SEQUENCE pg_dist_node_nodeid_seq AS integer START 1 NO CYCLE;

-- Group ids for citus_add_node(..., groupid => -1); group 0 is the
-- coordinator's and never comes from the sequence.
CREATE SEQUENCE pg_dist_groupid_seq AS integer START 1 NO CYCLE;

CREATE TABLE pg_dist_node (
    nodeid           integer  NOT NULL DEFAULT nextval('pg_dist_node_nodeid_seq') PRIMARY KEY,
    groupid          integer  NOT NULL,
    nodename         text     NOT NULL,
    nodeport         integer  NOT NULL DEFAULT 5432,
    noderack         text     NOT NULL DEFAULT 'default',
    hasmetadata      boolean  NOT NULL DEFAULT false,
    isactive         boolean  NOT NULL DEFAULT false,
    noderole         noderole NOT NULL DEFAULT 'primary',
    nodecluster      name     NOT NULL DEFAULT 'default',
    metadatasynced   boolean  NOT NULL DEFAULT false,
    shouldhaveshards boolean  NOT NULL DEFAULT true,
    UNIQUE (nodename, nodeport)
);

ALTER SEQUENCE pg_dist_node_nodeid_seq OWNED BY pg_dist_node.nodeid;

-- At most one primary per group and cluster. (Citus checks this in
-- citus_add_node and raises 'group % already has a primary node'; here the
-- index raises a unique violation, 23505.)
CREATE UNIQUE INDEX pg_dist_node_one_primary_per_group
    ON pg_dist_node (groupid, nodecluster) WHERE noderole = 'primary';

-- In the functions below, parameters are always qualified with the
-- function's name and columns with a table alias: several parameters have
-- the names of pg_dist_node's columns (as in Citus).

-- citus_add_node adds a node and returns its id; for an address that is
-- already in pg_dist_node it returns that node's id and changes nothing.
-- groupid -1 takes a new group id; group 0 is the coordinator's group
-- (shouldhaveshards false).
CREATE FUNCTION citus_add_node(
    nodename    text,
    nodeport    integer,
    groupid     integer  DEFAULT -1,
    noderole    noderole DEFAULT 'primary',
    nodecluster name     DEFAULT 'default')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    id  integer;
    grp integer := citus_add_node.groupid;
BEGIN
    SELECT n.nodeid INTO id FROM pg_dist_node n
     WHERE n.nodename = citus_add_node.nodename AND n.nodeport = citus_add_node.nodeport;
    IF FOUND THEN
        RETURN id;
    END IF;
    -- Citus serializes node additions with an exclusive lock on
    -- pg_dist_node (plain reads still go through) and checks again.
    LOCK TABLE pg_dist_node IN EXCLUSIVE MODE;
    SELECT n.nodeid INTO id FROM pg_dist_node n
     WHERE n.nodename = citus_add_node.nodename AND n.nodeport = citus_add_node.nodeport;
    IF FOUND THEN
        RETURN id;
    END IF;
    IF grp = -1 THEN
        grp := nextval('pg_dist_groupid_seq');
    END IF;
    INSERT INTO pg_dist_node (groupid, nodename, nodeport, hasmetadata, isactive,
                              noderole, nodecluster, metadatasynced, shouldhaveshards)
    VALUES (grp, citus_add_node.nodename, citus_add_node.nodeport, true, true,
            citus_add_node.noderole, citus_add_node.nodecluster, true, grp <> 0)
    RETURNING pg_dist_node.nodeid INTO id;
    RETURN id;
END
$$;

-- citus_add_secondary_node adds a secondary in the group of the node at
-- primaryname:primaryport and returns its id (or, like citus_add_node, the
-- id of the node already at nodename:nodeport).
CREATE FUNCTION citus_add_secondary_node(
    nodename    text,
    nodeport    integer,
    primaryname text,
    primaryport integer,
    nodecluster name DEFAULT 'default')
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    grp integer;
BEGIN
    SELECT n.groupid INTO grp FROM pg_dist_node n
     WHERE n.nodename = citus_add_secondary_node.primaryname
       AND n.nodeport = citus_add_secondary_node.primaryport;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node at "%:%" does not exist',
            citus_add_secondary_node.primaryname, citus_add_secondary_node.primaryport;
    END IF;
    RETURN citus_add_node(citus_add_secondary_node.nodename, citus_add_secondary_node.nodeport,
                          grp, 'secondary', citus_add_secondary_node.nodecluster);
END
$$;

-- citus_update_node moves node node_id to new_node_name:new_node_port.
--
-- As in Citus: an address that another node has is refused; the node's own
-- address is a no-op (no lock taken). Before a primary is moved, the
-- group's lock is taken exclusively and held until the end of the
-- transaction, so distributed statements routed to the group
-- (citus_standin_route here) wait until the move commits or rolls back and
-- then see the new address.
--
-- force and lock_cooldown are accepted and IGNORED: in Citus, force starts a
-- background worker that cancels the backends holding conflicting locks
-- after lock_cooldown ms; the stand-in just waits for the lock.
CREATE FUNCTION citus_update_node(
    node_id       integer,
    new_node_name text,
    new_node_port integer,
    force         boolean DEFAULT false,
    lock_cooldown integer DEFAULT 10000)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    holder integer;
    grp    integer;
    nrole  noderole;
BEGIN
    -- Citus looks at the address first, then at the node id.
    SELECT n.nodeid INTO holder FROM pg_dist_node n
     WHERE n.nodename = citus_update_node.new_node_name
       AND n.nodeport = citus_update_node.new_node_port;
    IF FOUND THEN
        IF holder = citus_update_node.node_id THEN
            RETURN;
        END IF;
        RAISE EXCEPTION 'there is already another node with the specified hostname and port'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    SELECT n.groupid, n.noderole INTO grp, nrole FROM pg_dist_node n
     WHERE n.nodeid = citus_update_node.node_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node % not found', citus_update_node.node_id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF nrole = 'primary' THEN
        PERFORM pg_advisory_xact_lock(4242, grp);
    END IF;
    UPDATE pg_dist_node n
       SET nodename = citus_update_node.new_node_name,
           nodeport = citus_update_node.new_node_port
     WHERE n.nodeid = citus_update_node.node_id;
END
$$;

-- citus_remove_node deletes the node at nodename:nodeport. Citus refuses to
-- remove a primary that holds the only placement of a shard; the stand-in
-- has no shards, so it always deletes.
CREATE FUNCTION citus_remove_node(nodename text, nodeport integer)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE pg_dist_node IN EXCLUSIVE MODE;
    DELETE FROM pg_dist_node n
     WHERE n.nodename = citus_remove_node.nodename AND n.nodeport = citus_remove_node.nodeport;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node at "%:%" does not exist',
            citus_remove_node.nodename, citus_remove_node.nodeport;
    END IF;
END
$$;

-- citus_set_coordinator_host sets the address of the coordinator (group 0):
-- it moves the group-0 node of that role and cluster, or adds one.
CREATE FUNCTION citus_set_coordinator_host(
    host         text,
    port         integer  DEFAULT current_setting('port')::integer,
    node_role    noderole DEFAULT 'primary',
    node_cluster name     DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    id integer;
BEGIN
    SELECT n.nodeid INTO id FROM pg_dist_node n
     WHERE n.groupid = 0
       AND n.noderole = citus_set_coordinator_host.node_role
       AND n.nodecluster = citus_set_coordinator_host.node_cluster;
    IF NOT FOUND THEN
        PERFORM citus_add_node(citus_set_coordinator_host.host, citus_set_coordinator_host.port,
                               0, citus_set_coordinator_host.node_role,
                               citus_set_coordinator_host.node_cluster);
        RETURN;
    END IF;
    UPDATE pg_dist_node n
       SET nodename = citus_set_coordinator_host.host,
           nodeport = citus_set_coordinator_host.port
     WHERE n.nodeid = id;
END
$$;

CREATE FUNCTION citus_version()
RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'Citus stand-in (pgwarden tests; not Citus)'::text $$;

-- citus_standin_route is NOT A CITUS FUNCTION: a test-only stand-in for a
-- distributed statement that the coordinator routes to group group_id. It
-- takes the group's lock in shared mode (held until the end of the caller's
-- transaction), so it waits while an uncommitted citus_update_node of the
-- group's primary is in flight, as a distributed statement waits on Citus's
-- metadata locks; then it returns the address of the group's primary as
-- committed at that point (the query after the lock takes a new snapshot
-- under READ COMMITTED). No row: the group has no primary.
CREATE FUNCTION citus_standin_route(group_id integer)
RETURNS TABLE (nodename text, nodeport integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(4242, citus_standin_route.group_id);
    RETURN QUERY
        SELECT n.nodename, n.nodeport FROM pg_dist_node n
         WHERE n.groupid = citus_standin_route.group_id
           AND n.noderole = 'primary'
           AND n.nodecluster = 'default';
END
$$;
