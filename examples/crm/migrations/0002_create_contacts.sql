-- People to talk to at a customer.

-- migrate:up
create table contacts (
  id text primary key,
  customer_id text not null references customers (id),
  name text not null,
  email text,
  phone text,
  role text,
  created_at timestamptz not null
);

create index contacts_customer on contacts (customer_id);

-- migrate:down
drop table contacts;
