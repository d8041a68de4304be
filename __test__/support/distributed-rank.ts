/**
 * One rank of the data-parallel test: trains the recipe of `distributedRecipe`
 * with `distributed: 'env'` (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set by
 * the test) and prints its history and predictions as JSON on the last line.
 */
import { distributedRecipe } from './distributed-recipe'

distributedRecipe('env')
  .then((result) => console.log(JSON.stringify(result)))
  .catch((error) => {
    console.error(`${error.name}: ${error.message}`)
    process.exit(1)
  })
