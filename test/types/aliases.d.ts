// The previous framework majors, installed under aliases for test/framework-versions.test.ts.
// Their APIs used there are those of the current majors, whose types stand in for them.
declare module 'express4' {
  import express from 'express';
  export default express;
}
declare module 'koa2' {
  import Koa from 'koa';
  export default Koa;
}
