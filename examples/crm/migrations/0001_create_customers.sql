-- Customers. The email is stored normalised (trimmed, lower-case) and is unique among customers that
-- are not deleted: a soft-deleted customer frees its email. Partial indexes work on PostgreSQL and SQLite.

-- migrate:up
create table customers (
  id text primary key,
  name text not null,
  email text not null,
  phone text,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  deleted_at timestamptz
);

create unique index customers_email_active on customers (email) where deleted_at is null;

-- keyset pagination walks (name, id)
create index customers_name_id on customers (name, id);

-- migrate:down
drop table customers;
