const { DatabasePool, DatabaseError } = require('/work/main/packages/core/dist')
const m = { backend:'postgres', dialect:'postgres', target:'x', lanes:{readers:0}, connect: async()=>({}), isUsable:()=>true, ping: async()=>{}, reset: ()=>undefined, destroy: async()=>{}, execute: async()=>({rows:[],rowCount:0}), beginStatement:()=>'BEGIN', mapError:(e)=>new DatabaseError('QUERY_FAILED',String(e)) }
;(async()=>{ const pool = new DatabasePool(m, {min:1,max:1}); const work=async()=>undefined; for(let i=0;i<600000;i++) await pool.withConnection(work); await pool.close() })()
