-- The address pool rlm_sqlippool hands out: :count addresses from :first on,
-- named :pool (the Pool-Name the users file or radcheck sets), free now; and the
-- tables FreeRADIUS writes, granted to the radius role.
INSERT INTO radippool (pool_name, framedipaddress, expiry_time)
SELECT :pool, (:first)::inet + n, now() - interval '1 second'
FROM generate_series(0, :count - 1) AS n;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO radius;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO radius;
